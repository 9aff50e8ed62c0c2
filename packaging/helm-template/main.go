// helm-template renders a Helm chart the way `helm template` does (Go's text/template with
// Sprig's functions plus Helm's include, toYaml, required and tpl) and prints the manifests as
// one JSON array, so tests can check the chart where the helm binary cannot be installed.
// It builds offline from Debian's packages (GO111MODULE=off GOPATH=/usr/share/gocode).
//
//	go run main.go CHART_DIR [VALUES.yaml ...]
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helm-template CHART_DIR [VALUES.yaml ...]")
		os.Exit(2)
	}
	manifests, err := render(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "helm-template:", err)
		os.Exit(1)
	}
	out, _ := json.MarshalIndent(manifests, "", "  ")
	fmt.Println(string(out))
}

func render(chartDir string, valueFiles []string) ([]map[string]interface{}, error) {
	var chart map[string]interface{}
	if err := readYAML(filepath.Join(chartDir, "Chart.yaml"), &chart); err != nil {
		return nil, err
	}
	values := map[string]interface{}{}
	for _, file := range append([]string{filepath.Join(chartDir, "values.yaml")}, valueFiles...) {
		var layer map[string]interface{}
		if err := readYAML(file, &layer); err != nil {
			return nil, err
		}
		merge(values, layer)
	}
	data := map[string]interface{}{
		"Values":  values,
		"Chart":   map[string]interface{}{"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
		"Release": map[string]interface{}{"Name": "coder", "Namespace": "coder", "Service": "Helm"},
	}

	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["toYaml"] = func(v interface{}) string {
		out, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	funcs["required"] = func(message string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", message)
		}
		return v, nil
	}
	root.Funcs(funcs)

	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if _, err := root.New(filepath.Base(file)).Parse(string(text)); err != nil {
			return nil, err
		}
	}

	var manifests []map[string]interface{}
	for _, file := range files {
		name := filepath.Base(file)
		if strings.HasPrefix(name, "_") || !strings.HasSuffix(name, ".yaml") {
			continue
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return nil, err
		}
		decoder := yaml.NewDecoder(&buf)
		for {
			var doc map[string]interface{}
			if err := decoder.Decode(&doc); err != nil {
				if err.Error() == "EOF" {
					break
				}
				return nil, fmt.Errorf("%s does not render to valid YAML: %w", name, err)
			}
			if doc == nil {
				continue
			}
			if doc["apiVersion"] == nil || doc["kind"] == nil {
				return nil, fmt.Errorf("%s renders a document without apiVersion and kind", name)
			}
			manifests = append(manifests, doc)
		}
	}
	return manifests, nil
}

func readYAML(path string, into interface{}) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(text, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// merge overlays layer on base as Helm merges -f files: maps deeply, everything else replaced.
func merge(base, layer map[string]interface{}) {
	for key, value := range layer {
		if sub, ok := value.(map[string]interface{}); ok {
			if existing, ok := base[key].(map[string]interface{}); ok {
				merge(existing, sub)
				continue
			}
		}
		base[key] = value
	}
}
