"""The dataset audit: near-duplicate images within and across the splits of any layout (`vton audit`, prepare's
``--dedupe near`` and ``--clean-test``). Signatures per image (`signature`), candidate pairs without comparing all
pairs (`search`), confirmation by aligned pixels (`confirm`), clusters and the outputs (`audit`)."""
