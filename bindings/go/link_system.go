package lwolfauth

// How the package links liblwolf_auth: here, the system's (an installed library, or one
// that CGO_LDFLAGS points at). The module as published replaces this file with two: the
// static archive it carries on linux/amd64, and this for other platforms or with
// `-tags lwolf_dynamic` (xtask/src/dist/go.rs).

// #cgo LDFLAGS: -llwolf_auth
import "C"
