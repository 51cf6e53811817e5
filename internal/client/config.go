package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"polyvirt/internal/pki"
)

// The environment variables that override the login configuration (for
// scripts and tests).
const (
	// EnvConfig names the configuration file.
	EnvConfig = "POLYVIRT_CONFIG"
	// EnvEngine is the engine URL.
	EnvEngine = "POLYVIRT_ENGINE"
	// EnvTokenFile names a file holding the API token.
	EnvTokenFile = "POLYVIRT_TOKEN_FILE"
	// EnvCAFile names the engine CA file.
	EnvCAFile = "POLYVIRT_CA_FILE"
)

// Config is what `polyvirt login` stores: the engine, the token, and how to
// trust the engine.
type Config struct {
	Engine string `json:"engine"`
	Token  string `json:"token"`
	// CA is the engine CA (PEM) the login trusted.
	CA string `json:"ca,omitempty"`
	// Fingerprint is a pinned certificate fingerprint, when the login
	// pinned one instead of a CA.
	Fingerprint string `json:"fingerprint,omitempty"`
	// User is who the token belongs to, for display.
	User string `json:"user,omitempty"`
}

// ConfigPath is the configuration file: $POLYVIRT_CONFIG, else
// ~/.config/polyvirt/config.json (the user's configuration directory).
func ConfigPath() (string, error) {
	if p := os.Getenv(EnvConfig); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory (set %s): %v", EnvConfig, err)
	}
	return filepath.Join(dir, "polyvirt", "config.json"), nil
}

// LoadConfig reads a configuration file; a missing file is an empty
// configuration.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

// SaveConfig writes a configuration file (0600; its directory 0700).
func SaveConfig(path string, c Config) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return pki.WriteFile(path, append(b, '\n'), 0o600)
}

// ReadTokenFile reads a token from a file: its first non-empty line.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			return t, nil
		}
	}
	return "", fmt.Errorf("%s holds no token", path)
}

// FromEnvironment makes the options of the CLI's calls: the login
// configuration, overridden by POLYVIRT_ENGINE, POLYVIRT_TOKEN_FILE and
// POLYVIRT_CA_FILE.
func FromEnvironment() (Options, error) {
	path, err := ConfigPath()
	if err != nil {
		return Options{}, err
	}
	c, err := LoadConfig(path)
	if err != nil {
		return Options{}, err
	}
	o := Options{Engine: c.Engine, Token: c.Token, CAPEM: []byte(c.CA), Fingerprint: c.Fingerprint}
	if v := os.Getenv(EnvEngine); v != "" {
		o.Engine = v
	}
	if f := os.Getenv(EnvTokenFile); f != "" {
		t, err := ReadTokenFile(f)
		if err != nil {
			return o, fmt.Errorf("%s: %v", EnvTokenFile, err)
		}
		o.Token = t
	}
	if f := os.Getenv(EnvCAFile); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("%s: %v", EnvCAFile, err)
		}
		o.CAPEM, o.Fingerprint = b, ""
	}
	if o.Engine == "" {
		return o, fmt.Errorf("not logged in: run polyvirt login --engine https://HOST:PORT (or set %s and %s)", EnvEngine, EnvTokenFile)
	}
	return o, nil
}
