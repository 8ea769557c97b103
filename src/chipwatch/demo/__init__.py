"""`chipwatch demo`: sample feeds on loopback and a one-shot run of the whole watch."""
