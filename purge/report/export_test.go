package report

import (
	"bytes"
	"encoding/json"

	"github.com/cdnpurge/cdnpurge/purge"
)

// What the tests (package report_test, which validates output with
// reporttest) reach inside.
var (
	AppendString = appendString
	AppendMS     = appendMS
	AppendFloat  = appendFloat
	MS           = ms
)

// Row returns result res of a step as appendRow writes it (hand) and as
// encoding/json writes its struct, purgeRow or checkRow, without HTML
// escaping (structs).
func Row(r *purge.Report, res purge.Result) (hand, structs []byte, err error) {
	return row(guard{r.Reveals}, res, r.Step == purge.StepVerify)
}

// RowOf is Row for a result of no report (a job without secrets).
func RowOf(res purge.Result, verify bool) (hand, structs []byte, err error) {
	return row(guard{}, res, verify)
}

func row(g guard, res purge.Result, verify bool) (hand, structs []byte, err error) {
	hand = appendRow(nil, g, res, appendString(nil, res.URL.String()), appendInstance(nil, g, res.Instance.String(), res.Instance), errText(res), verify)
	var v any = purgeRowOf(res)
	if verify {
		v = checkRowOf(res)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err = enc.Encode(v)
	return hand, bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}
