package plugins

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
)

func TestDecodeArgs(t *testing.T) {
	got, err := DecodeArgs("MusterGang", nil, configv1.DefaultGangArgs)
	require.NoError(t, err)
	assert.Equal(t, configv1.DefaultGangArgs(), *got, "no args: the defaults")

	given := &config.MusterGangArgs{DefaultTimeoutSeconds: 60, BackoffSeconds: 5}
	got, err = DecodeArgs("MusterGang", given, configv1.DefaultGangArgs)
	require.NoError(t, err)
	assert.Same(t, given, got)

	_, err = DecodeArgs("MusterGang", &metav1.Status{}, configv1.DefaultGangArgs)
	assert.ErrorContains(t, err, "MusterGang", "a wiring bug names the plugin")
}
