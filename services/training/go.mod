module github.com/bullseye-ml/bullseye/services/training

go 1.26.0

replace github.com/bullseye-ml/bullseye/pkg => ../../pkg
