package bulwarkgrpc

import "reflect"

// isNil reports whether v is nil or an interface holding a nil pointer,
// map, func, chan or slice, so a typed nil is refused as clearly as nil.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
