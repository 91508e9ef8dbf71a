package singleflight

import "encoding/json"

// Codec turns the values of a [Group] into bytes and back, so that the
// result of one replica's run reaches the callers of the others. Encode
// runs once per run, on the leader; Decode once per waiting replica. Both
// must be safe for concurrent use.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// Bytes is the identity codec of a Group[[]byte]. Decode returns b itself.
type Bytes struct{}

// Encode returns v.
func (Bytes) Encode(v []byte) ([]byte, error) { return v, nil }

// Decode returns b.
func (Bytes) Decode(b []byte) ([]byte, error) { return b, nil }

// String is the codec of a Group[string].
type String struct{}

// Encode returns the bytes of v.
func (String) Encode(v string) ([]byte, error) { return []byte(v), nil }

// Decode returns b as a string.
func (String) Decode(b []byte) (string, error) { return string(b), nil }

// JSON encodes values with encoding/json.
type JSON[T any] struct{}

// Encode returns the JSON encoding of v.
func (JSON[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }

// Decode parses the JSON in b.
func (JSON[T]) Decode(b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

var (
	_ Codec[[]byte] = Bytes{}
	_ Codec[string] = String{}
	_ Codec[int]    = JSON[int]{}
)
