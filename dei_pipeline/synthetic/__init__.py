"""Synthetic data for running and measuring the pipeline: the committed sample (calibrated to the white
paper's published 2020 figures) and the national-scale data set of the benchmarks. Invented, and labelled so."""
