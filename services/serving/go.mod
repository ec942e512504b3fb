module github.com/bullseye-ml/bullseye/services/serving

go 1.26.0

replace github.com/bullseye-ml/bullseye/pkg => ../../pkg
