"""`edgekit bench`: latency, throughput and memory of each runtime on a bundle, one child process per row.
stats.py (rows, settings, clocks, the timing loop) · plan.py (which rows, which feed) · parent.py (one
spawned child per row) · worker.py (the child) · report.py (table, Markdown, plot). Import from the modules.
"""
