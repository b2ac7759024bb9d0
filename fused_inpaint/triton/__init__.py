"""Triton kernels and launchers, one module per op (imported on first use, never by the package)."""
