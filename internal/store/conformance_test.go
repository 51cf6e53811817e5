package store_test

import (
	"testing"

	"polyvirt/internal/store"
	"polyvirt/internal/store/storetest"
)

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openSQLite(t) })
}

func TestPostgresConformance(t *testing.T) {
	postgresDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgres(t) })
}
