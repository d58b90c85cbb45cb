"""Does an artifact compute what the reference computes? compare.py (tolerances, statistics, exit paths,
`--data` feeds) · parity.py (the export's validation stage and `edgekit validate`) · testdata.py (stored
inputs and reference outputs) · metrics.py (task metrics: PSNR, SI-SDR, cosine) · debug.py (where and
which layer departs) · exact.py (NaN/Inf and integer outputs: the checks without a tolerance) ·
integrity_report.py (`edgekit verify`: every artifact and testdata file). Import from the modules.
"""
