//go:build !linux

package node

import "errors"

var errNoCongestion = errors.New("setting the TCP congestion control per connection is built for Linux only")

func setCongestion(any, string) error  { return errNoCongestion }
func congestionOf(any) (string, error) { return "", errNoCongestion }
func trySetCongestion(string) error    { return errNoCongestion }
