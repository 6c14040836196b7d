module github.com/lwolf-auth/lwolf-auth/bindings/go

go 1.19
