#!/bin/sh
# Offline stub of Bazel's coverage report generator (see BUILD).
echo "remote_coverage_tools stub: coverage report generation is not available offline;" >&2
echo "run 'pytest --cov' outside Bazel instead." >&2
exit 1
