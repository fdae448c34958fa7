"""gRPC front door: protos in proto/verity/v1, generated code in gen/, servicers that call the
workflows (never a second copy of their logic), problem codes mapped to gRPC statuses."""
