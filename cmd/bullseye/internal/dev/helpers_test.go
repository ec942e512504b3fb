package dev

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

func clientFor(m *Mesh) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: m.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func waitForReady() grpc.CallOption { return grpc.WaitForReady(true) }
