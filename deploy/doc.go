// Package deploy holds Bullseye's deployment files — the Dockerfile, the
// Kubernetes manifests under k8s/ (kustomize base and overlays) and the
// compose mesh's collector and Prometheus configuration — and the tests that
// check them: every overlay builds and decodes strictly into Kubernetes API
// types with consistent selectors, ports and security settings, and
// docker-compose.yml passes only flags and settings the binaries accept. They also check the
// modules' layering: no service module imports another (tests included), and no production
// binary links test support such as goleak.
package deploy
