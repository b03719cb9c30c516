package client

import "context"

// SmallNetwork exposes smallNetwork to the package's tests.
func (c *Client) SmallNetwork(ctx context.Context) bool { return c.smallNetwork(ctx) }
