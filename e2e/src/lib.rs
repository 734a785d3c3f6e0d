//! End-to-end test harness for ProgLog on Kubernetes.
