package api_test

import (
	"os"
	"testing"

	"github.com/etatcivil/etatcivil/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.ChildMain()
	os.Exit(m.Run())
}
