"""Root conftest, deliberately empty of hooks. The benchmark options, fixtures and the
machine_info hook live in the package's pytest plugin (``inference_scale.measure.plugin``, a pytest11
entry point), so any repo that installs the package gets them; ``pytester`` (which tests/ use
to run suites as a user would) is enabled with ``-p pytester`` in pyproject's addopts, not here:
this file also sits above the plugin's own suite in an editable install, where a
``pytest_plugins`` line would break a user's run."""
