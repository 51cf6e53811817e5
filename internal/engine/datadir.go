package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"polyvirt/internal/engine/service"
	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// The files of an engine data directory. Engines of one installation (on
// one PostgreSQL database) share the CA and the client certificate: copy
// them, with engine.json, to the data directory of the next engine.
const (
	// FileCA is the engine CA certificate: agents trust it for client
	// certificates, clients for the engine's HTTPS certificate.
	FileCA = "ca.pem"
	// FileCAKey is the CA's private key (0600): it signs the agents'
	// certificates at enrollment.
	FileCAKey = "ca-key.pem"
	// FileServerCert and FileServerKey are the engine's HTTPS certificate.
	FileServerCert = "engine.pem"
	FileServerKey  = "engine-key.pem"
	// FileClientCert and FileClientKey are the certificate the engine
	// presents to agents.
	FileClientCert = "engine-client.pem"
	FileClientKey  = "engine-client-key.pem"
	// FileSettings is the engine's settings (engine.json, 0600). It never
	// holds a secret: the database password comes from the environment
	// (POLYVIRT_DB, PGPASSWORD) or a secret file it names
	// (dbPasswordFile).
	FileSettings = "engine.json"
)

// certValidity is how long the certificates the engine issues are valid.
const certValidity = 825 * 24 * time.Hour

// ClientCertName is the common name of the engine's client certificate.
const ClientCertName = "polyvirt-engine"

// Settings are the engine's settings kept in the data directory
// (engine.json); command-line flags override them.
type Settings struct {
	// Name is the engine's name, in its certificate and its events.
	Name string `json:"name"`
	// DB is the database URL, without its password; "" is the SQLite file
	// polyvirt.db in the data directory.
	DB string `json:"db,omitempty"`
	// DBPasswordFile is a file (0600 or stricter) holding the PostgreSQL
	// password, when the database URL has none (an absolute path).
	DBPasswordFile string `json:"dbPasswordFile,omitempty"`
	// DBSchema is the PostgreSQL schema ("" is public).
	DBSchema string `json:"dbSchema,omitempty"`
	// Listen is the HTTPS listen address.
	Listen string `json:"listen,omitempty"`
	// URL is the engine's address as agents and clients reach it
	// (https://NAME:PORT), printed in the join commands.
	URL string `json:"url,omitempty"`
	// Addresses are the names and IP addresses in the HTTPS certificate.
	Addresses []string `json:"addresses,omitempty"`
	// Socket is the local API socket's path ("" for none): HTTP without
	// TLS for a CLI on the engine's machine, the token still required.
	Socket string `json:"socket,omitempty"`
	// SocketGroup is the group (name or number) whose members may use the
	// socket besides root and the engine's user ("" for none).
	SocketGroup string `json:"socketGroup,omitempty"`
}

// DefaultListen is the engine's default HTTPS address.
const DefaultListen = ":8443"

// LoadSettings reads DIR/engine.json.
func LoadSettings(dataDir string) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(filepath.Join(dataDir, FileSettings))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return s, fmt.Errorf("%s is not an engine data directory (no %s): run `polyvirt engine init --data-dir %s` first", dataDir, FileSettings, dataDir)
		}
		return s, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%s: %v", filepath.Join(dataDir, FileSettings), err)
	}
	return s, nil
}

// SaveSettings writes DIR/engine.json (0600).
func SaveSettings(dataDir string, s Settings) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dataDir, FileSettings), append(b, '\n'), 0o600)
}

// DatabaseURL is the database a data directory's engine uses: url when
// given, else the SQLite file in the directory.
func DatabaseURL(dataDir, url string) string {
	if url != "" {
		return url
	}
	return store.DefaultSQLitePath(dataDir)
}

// InitOptions configure Init.
type InitOptions struct {
	// DataDir is created (0700) and must not hold an engine yet.
	DataDir string
	// DB is the database URL ("" is DataDir/polyvirt.db); DBSchema the
	// PostgreSQL schema. A password in the URL is used to create the
	// database and kept nowhere: engine.json gets the URL without it.
	DB       string
	DBSchema string
	// DBPasswordFile names a file (0600) holding the PostgreSQL password,
	// recorded in engine.json for the runs (the password is read from it,
	// never copied).
	DBPasswordFile string
	// Name is the engine's name (default: the hostname); Addresses more
	// DNS names and IP addresses for its HTTPS certificate.
	Name      string
	Addresses []string
	// Listen is the HTTPS address (default :8443), kept in engine.json.
	Listen string
	// Admin is the first administrator's name (default "admin").
	Admin string
}

// InitResult is what Init made. AdminToken is shown once and stored
// nowhere (only its hash is).
type InitResult struct {
	DataDir       string `json:"dataDir"`
	Database      string `json:"database"`
	Backend       string `json:"backend"`
	URL           string `json:"url"`
	CAFile        string `json:"caFile"`
	CAFingerprint string `json:"caFingerprint"`
	Admin         string `json:"admin"`
	AdminToken    string `json:"adminToken"`
	// DatabasePassword says where the engine finds the database password
	// ("" when there is none to find).
	DatabasePassword string `json:"databasePassword,omitempty"`
}

// Init creates an engine: the data directory, the engine CA, the HTTPS and
// client certificates, the database (migrated), engine.json and the first
// administrator with a new API token. It refuses a directory that holds an
// engine and a database that has users already; on failure it removes
// what it wrote.
func Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	if strings.TrimSpace(o.DataDir) == "" {
		return nil, errors.New("--data-dir is required")
	}
	if o.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Name = h
	}
	if o.Admin == "" {
		o.Admin = "admin"
	}
	if err := store.ValidName(o.Admin); err != nil {
		return nil, fmt.Errorf("admin user: %v", err)
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	_, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want HOST:PORT or :PORT", o.Listen)
	}
	for _, f := range []string{FileCA, FileCAKey, FileSettings} {
		if _, err := os.Stat(filepath.Join(o.DataDir, f)); err == nil {
			return nil, fmt.Errorf("%s already holds an engine (%s exists): run it with `polyvirt engine run --data-dir %s`", o.DataDir, f, o.DataDir)
		}
	}
	var password string
	if o.DBPasswordFile != "" {
		abs, err := filepath.Abs(o.DBPasswordFile)
		if err != nil {
			return nil, err
		}
		o.DBPasswordFile = abs
		if password, err = ReadSecretFile(abs); err != nil {
			return nil, fmt.Errorf("--db-password-file: %w", err)
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	dbURL := DatabaseURL(o.DataDir, o.DB)
	st, err := store.Open(ctx, dbURL, store.Options{Schema: o.DBSchema, Password: password})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	users, err := st.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, fmt.Errorf("the database already belongs to an engine (it has %d users): to add an engine to that installation, copy %s, %s, %s, %s and %s from its data directory instead of running init",
			len(users), FileCA, FileCAKey, FileClientCert, FileClientKey, FileSettings)
	}

	var written []string
	cleanup := func() {
		for _, f := range written {
			os.Remove(f)
		}
	}
	write := func(name string, data []byte, mode os.FileMode) error {
		p := filepath.Join(o.DataDir, name)
		if err := pki.WriteFile(p, data, mode); err != nil {
			return err
		}
		written = append(written, p)
		return nil
	}
	ca, err := pki.NewCA("polyvirt engine CA (" + o.Name + ")")
	if err != nil {
		return nil, err
	}
	keyPEM, err := caKeyPEM(ca)
	if err != nil {
		return nil, err
	}
	names := serverNames(o.Name, o.Addresses)
	srv, err := ca.Issue(o.Name, names, pki.Server, certValidity)
	if err != nil {
		return nil, err
	}
	cli, err := ca.Issue(ClientCertName, nil, pki.Client, certValidity)
	if err != nil {
		return nil, err
	}
	// The configuration keeps the database URL without its password.
	cleanDB, urlPassword := store.SplitPassword(o.DB)
	settings := Settings{Name: o.Name, DB: cleanDB, DBPasswordFile: o.DBPasswordFile, DBSchema: o.DBSchema, Listen: o.Listen,
		URL: "https://" + net.JoinHostPort(o.Name, port), Addresses: o.Addresses}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileCAKey, keyPEM, 0o600}, {FileCA, ca.CertPEM, 0o644},
		{FileServerKey, srv.KeyPEM, 0o600}, {FileServerCert, srv.CertPEM, 0o644},
		{FileClientKey, cli.KeyPEM, 0o600}, {FileClientCert, cli.CertPEM, 0o644},
	} {
		if err := write(f.name, f.data, f.mode); err != nil {
			cleanup()
			return nil, err
		}
	}
	if err := SaveSettings(o.DataDir, settings); err != nil {
		cleanup()
		return nil, err
	}
	written = append(written, filepath.Join(o.DataDir, FileSettings))

	token, hash, err := NewAPIToken()
	if err != nil {
		cleanup()
		return nil, err
	}
	admin := store.User{Name: o.Admin, Role: store.RoleAdmin, TokenHash: hash}
	err = st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, &admin); err != nil {
			return err
		}
		return tx.AppendEvent(ctx, &store.Event{Action: "engine.init", Severity: store.SeverityInfo,
			ObjectKind: "user", ObjectID: admin.ID, ObjectName: admin.Name, User: admin.Name,
			Message: fmt.Sprintf("Engine %s was initialized; administrator %s was created.", o.Name, admin.Name)})
	})
	if err != nil {
		cleanup()
		return nil, err
	}
	abs, _ := filepath.Abs(o.DataDir)
	res := &InitResult{
		DataDir: abs, Database: DatabaseURL(o.DataDir, cleanDB), Backend: string(st.Backend()), URL: settings.URL,
		CAFile: filepath.Join(abs, FileCA), CAFingerprint: pki.Fingerprint(ca.Cert),
		Admin: admin.Name, AdminToken: token,
	}
	switch {
	case o.DBPasswordFile != "":
		res.DatabasePassword = "read from " + o.DBPasswordFile + " (named in " + FileSettings + ")"
	case urlPassword != "":
		res.DatabasePassword = "not stored: give the engine the database URL with its password in POLYVIRT_DB " +
			"(or --db), the password in PGPASSWORD, or a 0600 file with --db-password-file"
	}
	return res, nil
}

// IssueServerCert writes a new HTTPS certificate for an engine of the
// installation whose CA is in dataDir (a second engine with other names).
func IssueServerCert(dataDir, name string, addresses []string) error {
	ca, err := pki.LoadCA(filepath.Join(dataDir, FileCA), filepath.Join(dataDir, FileCAKey))
	if err != nil {
		return fmt.Errorf("engine CA: %w", err)
	}
	srv, err := ca.Issue(name, serverNames(name, addresses), pki.Server, certValidity)
	if err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(dataDir, FileServerKey), srv.KeyPEM, 0o600); err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dataDir, FileServerCert), srv.CertPEM, 0o644)
}

// serverNames are the names of the engine's HTTPS certificate: its name,
// the given addresses, and the local ones.
func serverNames(name string, addresses []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range append(append([]string{name}, addresses...), "localhost", "127.0.0.1", "::1") {
		n = strings.TrimSpace(n)
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func caKeyPEM(ca *pki.CA) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// NewAPIToken makes a user's API token and the hash to store
// (service.NewAPIToken).
func NewAPIToken() (token, hash string, err error) { return service.NewAPIToken() }

// pkiFiles are the engine's certificates, loaded.
type pkiFiles struct {
	ca        *pki.CA
	server    tls.Certificate
	clientPEM []byte
	clientKey []byte
}

// loadPKI reads the CA, the HTTPS certificate (sent with the CA, so that
// an agent can check the chain against its join token) and the client
// certificate of a data directory.
func loadPKI(dataDir string) (*pkiFiles, error) {
	p := func(n string) string { return filepath.Join(dataDir, n) }
	ca, err := pki.LoadCA(p(FileCA), p(FileCAKey))
	if err != nil {
		return nil, fmt.Errorf("engine CA (%s): %w", p(FileCA), err)
	}
	certPEM, err := os.ReadFile(p(FileServerCert))
	if err != nil {
		return nil, fmt.Errorf("HTTPS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p(FileServerKey))
	if err != nil {
		return nil, fmt.Errorf("HTTPS key: %w", err)
	}
	server, err := tls.X509KeyPair(append(append([]byte{}, certPEM...), ca.CertPEM...), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("HTTPS certificate %s: %w", p(FileServerCert), err)
	}
	cli, err := os.ReadFile(p(FileClientCert))
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	cliKey, err := os.ReadFile(p(FileClientKey))
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	if _, err := tls.X509KeyPair(cli, cliKey); err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", p(FileClientCert), err)
	}
	return &pkiFiles{ca: ca, server: server, clientPEM: cli, clientKey: cliKey}, nil
}

// ReadSecretFile reads a secret (a password) from a file that only its
// owner may read (0600 or 0400): its first line, without the line end.
// A file others may read is refused, as ssh refuses such a key.
func ReadSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s may be read by others (mode %04o): a secret file is 0600 (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", err
	}
	secret, _, _ := strings.Cut(string(b), "\n")
	secret = strings.TrimSuffix(secret, "\r")
	if secret == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return secret, nil
}
