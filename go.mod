module github.com/vmnet-broker/vmnet-broker

go 1.19
