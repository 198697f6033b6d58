#!/bin/sh
# SPDX-License-Identifier: MIT
# Registered as tests/gpu's test when the build has no CUDA (meson -Dcuda=disabled
# or no nvcc): says so and exits 77, which meson reports as SKIP.
echo "SKIP: this build has no CUDA backend (meson -Dcuda=enabled needs nvcc)"
exit 77
