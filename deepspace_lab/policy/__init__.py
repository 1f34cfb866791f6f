"""Risk and policy: rate limits, IP rules and model policy, as data operators change."""
