"""Benchmarks for genloop against asyncio, uvloop and trio (run with ``python -m bench.NAME``)."""
