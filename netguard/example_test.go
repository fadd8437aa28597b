package netguard_test

import (
	"fmt"
	"net/netip"

	"github.com/hookstream/hookstream/netguard"
)

func ExampleCheckURL() {
	for _, u := range []string{
		"https://hooks.example.com/in",
		"ftp://hooks.example.com/in",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::ffff:10.0.0.1]:8080/",
		"http://localhost:3000/",
	} {
		fmt.Println(netguard.CheckURL(u, false))
	}
	// Output:
	// <nil>
	// url: scheme must be http or https
	// url: address not allowed: cloud-metadata address 169.254.169.254
	// url: address not allowed: private address ::ffff:10.0.0.1
	// url: address not allowed: loopback name localhost
}

func ExampleClassify() {
	for _, a := range []string{"8.8.8.8", "100.64.1.2", "64:ff9b::7f00:1", "fd00:ec2::254"} {
		fmt.Printf("%s: %q\n", a, netguard.Classify(netip.MustParseAddr(a)))
	}
	// Output:
	// 8.8.8.8: ""
	// 100.64.1.2: "cgnat"
	// 64:ff9b::7f00:1: "loopback"
	// fd00:ec2::254: "cloud-metadata"
}
