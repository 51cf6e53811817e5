package service

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/enroll"
	"polyvirt/internal/pki"
	"polyvirt/internal/store"
)

// Enrollment enrolls the hosts' agents: an agent joins with its host's
// one-time join token and gets a certificate signed by the engine CA.
type Enrollment struct{ e *engine }

// certValidity is how long the certificates the engine issues are valid.
const certValidity = 825 * 24 * time.Hour

// Join enrolls an agent (no authentication but the one-time token; from is
// the address the request came from, for the audit log): the token is
// consumed and the agent's certificate request signed in one transaction,
// so a refused request issues nothing and leaves the token as it was.
// Refusals are recorded in the audit log, a few per minute.
func (s *Enrollment) Join(ctx context.Context, req enroll.JoinRequest, from string) (enroll.JoinResponse, error) {
	resp, err := s.e.join(ctx, req, from)
	return resp, coded(err)
}

func (e *engine) join(ctx context.Context, req enroll.JoinRequest, from string) (enroll.JoinResponse, error) {
	var resp enroll.JoinResponse
	tok, err := enroll.ParseToken(req.Token)
	if err != nil {
		e.auditJoinRefusal(ctx, from, api.CodeJoinTokenMalformed, err.Error())
		return resp, &api.Error{Code: api.CodeJoinTokenMalformed, Field: "token", Message: err.Error()}
	}
	if tok.CAHash != e.caFP {
		e.auditJoinRefusal(ctx, from, api.CodeJoinTokenWrongEngine, "the token names CA "+tok.CAHash)
		return resp, &api.Error{Code: api.CodeJoinTokenWrongEngine, Field: "token",
			Message: fmt.Sprintf("the join token was issued by another engine (CA %s…); this engine's CA is %s…", tok.CAHash[:16], e.caFP[:16])}
	}
	if err := checkCSR(req.CSR); err != nil {
		return resp, &api.Error{Code: api.CodeCSRInvalid, Field: "csr", Message: err.Error()}
	}
	if req.LibvirtCSR != "" {
		if err := checkCSR(req.LibvirtCSR); err != nil {
			return resp, &api.Error{Code: api.CodeCSRInvalid, Field: "libvirtCsr", Message: err.Error()}
		}
	}
	err = e.st.InTx(ctx, func(tx store.Tx) error {
		h, err := tx.ConsumeJoinToken(ctx, tok.Hash())
		switch {
		case errors.Is(err, store.ErrNotFound):
			return &api.Error{Code: api.CodeJoinTokenInvalid, Field: "token",
				Message: "the join token is not valid: no host has it (mistyped, forged, or replaced by a newer token)"}
		case errors.Is(err, store.ErrExpired):
			return &api.Error{Code: api.CodeJoinTokenExpired, Field: "token",
				Message: "the join token has expired: issue a new one (polyvirt host join-token NAME)"}
		case errors.Is(err, store.ErrConflict):
			return &api.Error{Code: api.CodeJoinTokenUsed, Field: "token",
				Message: "the join token was used already: a token enrolls one agent once; issue a new one (polyvirt host join-token NAME)"}
		case err != nil:
			return err
		}
		// A server certificate only: an enrolled agent cannot present it as a
		// client to another agent (those accept the engine's client
		// certificate).
		certPEM, err := e.ca.SignCSR([]byte(req.CSR), h.Name, hostCertNames(h), pki.Server, certValidity)
		if err != nil {
			return &api.Error{Code: api.CodeCSRInvalid, Field: "csr", Message: err.Error()}
		}
		cert, err := pki.ParseCertificate(certPEM)
		if err != nil {
			return err
		}
		// The host's libvirt certificate: its libvirtd serves other hosts'
		// libvirtd with it, and presents it to them when it sends a VM.
		// Its unit keeps it out of every agent's API.
		var libvirtPEM []byte
		if req.LibvirtCSR != "" {
			if libvirtPEM, err = e.ca.SignCSR([]byte(req.LibvirtCSR), h.Name, hostCertNames(h), pki.LibvirtPeer, certValidity); err != nil {
				return &api.Error{Code: api.CodeCSRInvalid, Field: "libvirtCsr", Message: err.Error()}
			}
		}
		h.CertFingerprint, h.CertSerial = pki.Fingerprint(cert), cert.SerialNumber.Text(16)
		if h.Status != store.HostMaintenance {
			h.Status, h.StatusCode = store.HostInstalling, ""
			h.StatusMessage = fmt.Sprintf("enrolled; waiting for its agent to answer at %s", h.Address)
		}
		if err := tx.UpdateHost(ctx, &h); err != nil {
			return err
		}
		c, err := tx.GetCluster(ctx, h.ClusterID)
		if err != nil {
			return err
		}
		if err := e.appendEvent(ctx, tx, store.Event{Action: "host.join", ObjectKind: "host", ObjectID: h.ID, ObjectName: h.Name,
			Message: fmt.Sprintf("Host %s was enrolled: its agent received a certificate signed by the engine CA (serial %s).", h.Name, h.CertSerial),
			Reason:  "join request from " + from}); err != nil {
			return err
		}
		resp = enroll.JoinResponse{HostID: h.ID, HostName: h.Name, Address: h.Address, Cluster: c.Name,
			CACert: string(e.ca.CertPEM), Cert: string(certPEM), CertFingerprint: h.CertFingerprint, LibvirtCert: string(libvirtPEM)}
		return nil
	})
	if err != nil {
		if ae := asAPIError(err); ae.Code == api.CodeJoinTokenInvalid || ae.Code == api.CodeJoinTokenExpired || ae.Code == api.CodeJoinTokenUsed {
			e.auditJoinRefusal(ctx, from, ae.Code, ae.Message)
		}
		return resp, err
	}
	e.hostChanged()
	return resp, nil
}

// auditJoinRefusal records a refused join in the audit log (at most a
// few per minute: the route is open to anyone).
func (e *engine) auditJoinRefusal(ctx context.Context, from, code, why string) {
	e.log.Warn("join refused", "from", from, "code", code, "why", why)
	if !e.joinAudit.allow() {
		return
	}
	err := e.appendEvent(ctx, e.st, store.Event{Action: "host.join", Severity: store.SeverityWarning, ObjectKind: "host",
		Code: code, Message: fmt.Sprintf("A join request from %s was refused (%s).", from, code), Reason: why})
	if err != nil {
		e.log.Warn("audit log", "err", err)
	}
}

// hostCertNames are the names of an agent's certificate: the host's name
// and the host part of its address.
func hostCertNames(h store.Host) []string {
	names := []string{h.Name}
	if host, _, err := net.SplitHostPort(h.Address); err == nil && host != "" && host != h.Name {
		names = append(names, host)
	}
	return names
}

// checkCSR checks a PEM certificate request before anything is consumed.
func checkCSR(csrPEM string) error {
	if csrPEM == "" {
		return errors.New("csr is empty: send the agent's PEM certificate request")
	}
	block, rest := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return errors.New("csr is not a PEM CERTIFICATE REQUEST")
	}
	if len(rest) > 0 && len(pemTrim(rest)) > 0 {
		return errors.New("csr has data after the certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Errorf("csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("csr: bad signature: %v", err)
	}
	return nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
