// Package api is the root of the contract layer: the one error type every
// polyvirt API answers with and every rule returns (a stable code, a
// readable message, the field at fault), and every code, declared once
// (codes.go). The documents of each API live in its sub-packages: agentapi
// (the host agent), engineapi (the engine), hostreport (the host
// capabilities report), enroll (the join protocol).
//
// The contract layer imports nothing of polyvirt's but package arch; every
// other layer may import it.
package api
