module github.com/bullseye-ml/bullseye/cmd/bullseye

go 1.26.0

replace (
	github.com/bullseye-ml/bullseye/pkg => ../../pkg
	github.com/bullseye-ml/bullseye/services/feature => ../../services/feature
	github.com/bullseye-ml/bullseye/services/ingest => ../../services/ingest
	github.com/bullseye-ml/bullseye/services/serving => ../../services/serving
	github.com/bullseye-ml/bullseye/services/training => ../../services/training
)
