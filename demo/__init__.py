"""make demo: the status server and the monitor on this machine, without
Docker, in one terminal.

The server listens on 127.0.0.1 (DEMO_PORT, DEMO_METRICS_PORT) and logs to
bin/server.log; the monitor probes it and prints readable records. Ctrl-C,
or SIGTERM to make, stops the monitor first, then the server. Everything else
in the environment (LOKI_URL, PROBE_INTERVAL, SERVER_FLAKY, ...) reaches the
two programs as their own options' fallbacks.
"""
