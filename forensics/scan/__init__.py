"""Vulnerability and hardening scans: docker-bench host and runtime checks, dockle's image
checkpoints natively, trivy run offline. One result model (:mod:`forensics.scan.model`),
every check described as data (:mod:`forensics.scan.checks`)."""
