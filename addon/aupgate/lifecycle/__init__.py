"""A policy's life before it goes live: tests with coverage (`aupgate test`), replaying past
traffic under a candidate (`aupgate diff`), and the shadow policy's comparison in the proxy.

See docs/policy-lifecycle.md for the administrator's walk through test, diff, shadow, go-live.
"""
