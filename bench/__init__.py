"""make bench: measure the monitor and the server side by side, in one run on
one machine, and write docs/benchmarks.md.

Absolute times on a shared machine are noise; what this reports are
differences and ratios measured in the same run: the client against
blackbox_exporter probing the same server, the instrumented server against
the same handler without telemetry. Nothing here fails on a number.

One module per table (accuracy, rhythm, cost, throughput, scrape, fleet), each with
a measure() that returns the values its section of template.md names;
processes.py starts and reads what they measure, report.py puts it together.
"""
