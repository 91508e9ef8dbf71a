package control_test

import (
	"testing"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }
