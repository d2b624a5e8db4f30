"""Operators of the provider: MapReduceOperator (operators/mapreduce.py)."""
