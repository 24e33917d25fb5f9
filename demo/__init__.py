"""The demo application that `make run` ships through the pipeline, and its load generator.

`python -m demo.app --port P --version V [--release FILE]` is a small HTTP service whose
behaviour per version comes from a release file, so every branch of a rollout (promotion,
analysis failure, a canary that never becomes ready, one that crashes) can be driven for real
through nginx and Prometheus. `python -m demo.loadgen --url URL --rate R` sends it steady
open-loop traffic and reports which versions answered.

The release files in demo/releases/:

    1.0.0.json        healthy (the stable version the demo starts from)
    2.0.0.json        healthy (a canary that is promoted)
    3.0.0.json        error_rate 0.2: every fifth request answers 500 (analysis fails)
    slow.json         added_latency_ms 300: p95 above a 250 ms threshold (analysis fails)
    never-ready.json  /healthz answers 503 forever (the rollout times out waiting)
    crash.json        exits 3 at start (the instance never comes up)
"""
