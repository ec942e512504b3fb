// Package deploy holds Bullseye's deployment files — the Dockerfile, the
// Kubernetes manifests under k8s/ (kustomize base and overlays) and the
// compose mesh's collector and Prometheus configuration — and the tests that
// check them: every overlay builds and decodes strictly into Kubernetes API
// types with consistent selectors, ports and security settings, and
// docker-compose.yml passes only flags and settings the binaries accept.
package deploy
