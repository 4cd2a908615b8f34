package podgroup

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// TestNewClientSpeaksJSON: a config asking for protobuf (as
// kube-scheduler's does) still reads PodGroups as JSON, and is left as it was.
func TestNewClientSpeaksJSON(t *testing.T) {
	var accept string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(schedv1alpha1.PodGroup{
			TypeMeta:   metav1.TypeMeta{APIVersion: schedv1alpha1.SchemeGroupVersion.String(), Kind: "PodGroup"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "train"},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: 3},
		})
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL, ContentConfig: rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"}}

	client, err := NewClient(cfg)
	require.NoError(t, err)
	pg, err := client.SchedulingV1alpha1().PodGroups("ml").Get(t.Context(), "train", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(3), pg.Spec.MinMember)
	assert.Equal(t, "application/json", accept)
	assert.Equal(t, "application/vnd.kubernetes.protobuf", cfg.ContentType, "the caller's config is not changed")
}
