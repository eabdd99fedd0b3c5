package sandbox

import "fmt"

// ResolveAPIURLSource is ResolveAPIURL for the ktrdr profile, plus a short
// description of the rule that chose the URL, for messages such as "nothing
// answers at http://localhost:8003 (KTRDR_API_PORT in /src/ktrdr--a/.env.sandbox)".
func ResolveAPIURLSource(explicitURL string, explicitPort int, cwd string) (url, source string, err error) {
	return KTRDR().ResolveAPIURLSource(explicitURL, explicitPort, cwd)
}

// ResolveAPIURLSource is ResolveAPIURL for profile p (the URL comes from
// p.ResolveAPIURL itself), plus which rule chose it: "explicit URL",
// "explicit port", "<APIPortKey> in <path of the env file>", or
// "default: no <EnvFile> in <cwd> or its parents[ up to the checkout's root <root>]".
func (p *Profile) ResolveAPIURLSource(explicitURL string, explicitPort int, cwd string) (url, source string, err error) {
	switch {
	case explicitURL != "":
		source = "explicit URL"
	case explicitPort != 0:
		source = "explicit port"
	default:
		path, stop, err := p.findEnvFile(cwd)
		if err != nil {
			return "", "", err
		}
		switch {
		case path == "" && stop != "":
			source = fmt.Sprintf("default: no %s in %s or its parents up to the checkout's root %s", p.EnvFile, cwd, stop)
		case path == "":
			source = fmt.Sprintf("default: no %s in %s or its parents", p.EnvFile, cwd)
		default:
			source = p.APIPortKey + " in " + path
		}
	}
	url, err = p.ResolveAPIURL(explicitURL, explicitPort, cwd)
	if err != nil {
		return "", "", err
	}
	return url, source, nil
}
