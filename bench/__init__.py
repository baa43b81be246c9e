"""Benchmark scripts; a package so tests import them (``import bench.paper_table``)."""
