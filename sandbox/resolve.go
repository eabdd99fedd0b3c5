package sandbox

import (
	"github.com/ktrdr/sandboxkit/sandbox/apiurl"
	"github.com/ktrdr/sandboxkit/sandbox/envfile"
)

// ResolveAPIURL is apiurl.Resolve: the ktrdr API URL a command run in cwd
// should use. New code imports sandbox/apiurl, which is far smaller.
func ResolveAPIURL(explicitURL string, explicitPort int, cwd string) (string, error) {
	return apiurl.Resolve(explicitURL, explicitPort, cwd)
}

// EnvFileError reports a .env.sandbox that cannot be used (envfile.Error).
type EnvFileError = envfile.Error

// ErrEnvSymlink is wrapped by the *EnvFileError for an env file that is a
// symlink (apiurl.ErrSymlink).
var ErrEnvSymlink = apiurl.ErrSymlink

// Resolver returns the API URL resolver of profile p.
func (p *Profile) Resolver() apiurl.Resolver {
	return apiurl.Resolver{EnvFile: p.EnvFile, PortKey: p.APIPortKey, HostKey: KeyHost, DefaultURL: p.DefaultAPIURL()}
}

// FindEnvFile returns the path of the nearest env file in dir or its
// parents, up to the root of the git checkout that holds dir, or "" if
// there is none (apiurl.Resolver.FindEnvFile).
func (p *Profile) FindEnvFile(dir string) (string, error) {
	path, _, err := p.Resolver().FindEnvFile(dir)
	return path, err
}
