package maillab

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// templates are parsed once per use: parsing is cheap and keeps no state
// between labs.
func renderTemplate(name, dest string, perm os.FileMode, data any) error {
	tmpl, err := template.New(name).Option("missingkey=error").ParseFS(templateFS, "templates/"+name)
	if err != nil {
		return fmt.Errorf("parse template %s: %w", name, err)
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", dest, err)
	}
	if err := tmpl.Execute(f, data); err != nil {
		f.Close()
		return fmt.Errorf("render %s: %w", dest, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return nil
}

// mkdirs creates each directory (and parents) with mode perm.
func mkdirs(perm os.FileMode, dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, perm); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		// MkdirAll's mode is filtered by the umask.
		if err := os.Chmod(d, perm); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	return nil
}

// logDir is where every server of the lab writes its log file.
func (l *Lab) logDir() string { return filepath.Join(l.dir, "log") }
