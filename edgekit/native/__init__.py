"""Native (C/C++) use of bundles: embed.py plans the build and run of the examples in `examples/cpp` and
`examples/c` against this machine's OpenVINO (`edgekit embed`). Import from the modules.
"""
