// Command memometer-measure runs one memorization measurement on a memometer server and prints
// the result per copy depth:
//
//	memometer-measure -server localhost:50051 -model examples/fashion-cnn \
//	    -dataset examples/fashion-mnist-2k.npz -depths 1,2 -scale 0.00392156862745098
//
// Progress goes to stderr, one line per depth to stdout. On a gRPC error it prints the status
// code and message to stderr and exits 1. Build it offline with scripts/build-go-client.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	memometerv1 "memometer.dev/gen/go/memometer/v1"
)

func main() {
	server := flag.String("server", "localhost:50051", "memometer server `host:port`")
	model := flag.String("model", "examples/fashion-cnn", "model `URI` (s3:// or a path under the server's data root)")
	dataset := flag.String("dataset", "examples/fashion-mnist-2k.npz", "dataset `URI` (.npz or IDX folder)")
	output := flag.String("output", "", "where the server writes report.json (`URI`); empty: nowhere")
	depths := flag.String("depths", "1", "comma-separated copy depths")
	labels := flag.Uint("labels", 0, "number of random labels `N` (0: server default, 10)")
	epochs := flag.Uint("epochs", 0, "training epochs `E` (0: server default, 10)")
	scale := flag.Float64("scale", 1, "input scale `X` (e.g. 0.00392156862745098 for 8-bit images)")
	token := flag.String("token", "", "bearer `token` sent as authorization metadata (default $MEMOMETER_API_TOKEN)")
	timeout := flag.Duration("timeout", 30*time.Minute, "deadline of the whole measurement (0: none)")
	flag.Parse()

	copyDepths, err := parseDepths(*depths)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memometer-measure: -depths: %v\n", err)
		os.Exit(2)
	}
	req := &memometerv1.MeasureMemorizationRequest{
		ModelUri:        *model,
		DatasetUri:      *dataset,
		OutputUri:       *output,
		CopyDepths:      copyDepths,
		NumRandomLabels: uint32(*labels),
		Epochs:          uint32(*epochs),
	}
	if *scale != 1 {
		req.InputScaling = &memometerv1.InputScaling{Scale: proto.Float64(*scale)}
	}

	ctx := context.Background()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if *token == "" {
		*token = os.Getenv("MEMOMETER_API_TOKEN")
	}
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}

	// grpc-go 1.33 (Debian) predates credentials/insecure.
	conn, err := grpc.Dial(*server, grpc.WithInsecure())
	if err != nil {
		fail(err)
	}
	defer conn.Close()

	result, err := measure(ctx, memometerv1.NewMemorizationServiceClient(conn), req)
	if err != nil {
		conn.Close()
		fail(err)
	}
	for _, d := range result.GetDepths() {
		fmt.Printf("depth %d random_label_accuracy=%.4f chance=%.4f memorization_score=%.4f held_out=%.4f\n",
			d.GetCopyDepth(), d.GetRandomLabelAccuracy(), d.GetChance(), d.GetMemorizationScore(), d.GetHeldOutRandomLabelAccuracy())
	}
}

// measure reads the whole stream, logging progress to stderr, and returns its final result.
func measure(ctx context.Context, client memometerv1.MemorizationServiceClient, req *memometerv1.MeasureMemorizationRequest) (*memometerv1.MeasurementResult, error) {
	stream, err := client.MeasureMemorization(ctx, req)
	if err != nil {
		return nil, err
	}
	var result *memometerv1.MeasurementResult
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch ev := msg.GetEvent().(type) {
		case *memometerv1.MeasureMemorizationResponse_Started:
			fmt.Fprintf(os.Stderr, "measurement %s (%s)\n", ev.Started.GetMeasurementId(), ev.Started.GetState())
		case *memometerv1.MeasureMemorizationResponse_Planned:
			p := ev.Planned
			fmt.Fprintf(os.Stderr, "planned: %s backend, depths %v, %d train / %d held-out samples\n",
				p.GetBackend(), p.GetCopyDepths(), p.GetTrainSamples(), p.GetHeldOutSamples())
		case *memometerv1.MeasureMemorizationResponse_Epoch:
			e := ev.Epoch
			fmt.Fprintf(os.Stderr, "seed %d depth %d epoch %d/%d random_label_accuracy=%.4f loss=%.4f\n",
				e.GetSeed(), e.GetCopyDepth(), e.GetEpoch(), e.GetEpochs(), e.GetRandomLabelAccuracy(), e.GetLosses().GetRandomLabel())
		case *memometerv1.MeasureMemorizationResponse_Result:
			result = ev.Result
		}
	}
	if result == nil {
		return nil, status.Error(codes.Unknown, "the stream ended without a result")
	}
	for _, w := range result.GetWarnings() {
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}
	if uri := result.GetReportUri(); uri != "" {
		fmt.Fprintf(os.Stderr, "report: %s\n", uri)
	}
	return result, nil
}

func parseDepths(s string) ([]uint32, error) {
	var depths []uint32
	for _, part := range strings.Split(s, ",") {
		d, err := strconv.ParseUint(strings.TrimSpace(part), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("expects comma-separated integers, got %q", s)
		}
		depths = append(depths, uint32(d))
	}
	return depths, nil
}

// fail prints a gRPC status as its canonical code name (INVALID_ARGUMENT, ...) and message.
func fail(err error) {
	st := status.Convert(err)
	fmt.Fprintf(os.Stderr, "memometer-measure: %s: %s\n", code.Code(st.Code()), st.Message())
	os.Exit(1)
}
