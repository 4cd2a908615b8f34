// Package config holds the internal types of muster's plugin arguments.
//
// The types are registered into kube-scheduler's own config scheme (group
// kubescheduler.config.k8s.io), so the framework decodes, defaults and converts
// them from a KubeSchedulerConfiguration like any in-tree plugin's args. The
// versioned (v1) types users write live in the v1 subpackage.
package config
