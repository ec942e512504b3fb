module github.com/bullseye-ml/bullseye/services/ingest

go 1.26.0

replace github.com/bullseye-ml/bullseye/pkg => ../../pkg
