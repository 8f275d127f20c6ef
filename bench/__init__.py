"""Benchmark of jaxgmm against scikit-learn and gmmx on the workloads of GUIDE section 6.

Run ``python -m bench`` from the repository root; see bench/README.md.
"""
