module aws-lambda-extensions/go-example-extension

go 1.14
