"""Small local networks for 1x28x28 digits: LeNet, a student CNN and a teacher CNN.

These are the models that can be *trained* on this machine in seconds, so they carry real
accuracy numbers (the torchvision zoo runs with random weights offline).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LeNet", "StudentCNN", "TeacherCNN"]


class LeNet(nn.Module):
    """LeNet-5 as in the course module: conv 1->6 5x5, conv 6->16 5x5, fc 120, fc 84, fc 10.

    With a 28x28 input and unpadded 5x5 kernels the feature map shrinks 28 -> 24 -> 12 -> 8 -> 4,
    so the first fully connected layer sees 16 * 4 * 4 = 256 features (44,426 parameters).
    """

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class StudentCNN(nn.Module):
    """A deliberately small CNN (about 9k parameters): two 3x3 convs and one linear head."""

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(16 * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class TeacherCNN(nn.Module):
    """A larger CNN (about 1.0M parameters, > 10x LeNet and the student) with batch norm and
    dropout, so it trains to high accuracy on the 5,000 MNIST digits within seconds."""

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(in_channels, 32),
            *block(32, 64),
            nn.MaxPool2d(2),
            *block(64, 128),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.3),
            nn.Linear(128 * 7 * 7, 160),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(160, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
