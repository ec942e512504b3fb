package dataset

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...) }
