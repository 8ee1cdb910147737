package workflow

import (
	"errors"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"
)

// stageWhat says what a value that failed validation at a stage was.
var stageWhat = map[string]string{
	"workflow input": "invalid input", "workflow output": "invalid output",
	"task input": "got invalid input", "task output": "gave invalid output",
}

// check validates v, given to or made by task ("" for the workflow) at
// stage; it returns nil when v is valid.
func (r *run) check(v any, task, stage string) *WorkflowError {
	err := validateStruct(r.e.cfg.validate, v)
	if err == nil {
		return nil
	}
	werr := &WorkflowError{Workflow: r.e.name, RunID: r.id, Task: task, what: stageWhat[stage],
		Details: map[string]any{"stage": stage}}
	var verrs validator.ValidationErrors
	switch {
	case errors.As(err, &verrs):
		fields := make(map[string]string, len(verrs))
		said := make([]string, len(verrs))
		for k, fe := range verrs {
			rule := fe.Tag()
			if fe.Param() != "" {
				rule += "=" + fe.Param()
			}
			fields[fe.Namespace()] = rule
			said[k] = fieldRule(fe, rule)
		}
		werr.Details["fields"] = fields
		werr.Message = strings.Join(said, "; ")
	case errors.Is(err, ErrInvalidWorkflow): // the validator panicked
		werr.Message, werr.Err = err.Error(), err
	default:
		werr.Message = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	if werr.Err == nil {
		werr.Err = &libError{msg: werr.Message, errs: []error{ErrInvalidInput, err}}
	}
	if task != "" {
		werr.Err = Permanent(werr.Err)
	}
	return werr
}

// fieldRule says that a field failed its rule, naming the field as the
// user wrote it: its Go name, nested fields after a dot ("Address.City").
func fieldRule(fe validator.FieldError, rule string) string {
	field := fe.StructNamespace()
	if _, rest, ok := strings.Cut(field, "."); ok {
		field = rest // without the struct's type
	}
	if rule == "required" {
		return field + " is required"
	}
	return field + " must be " + rule
}

// checkTags finds the validate tags that name no rule, in the workflow's
// and its tasks' input and output types, by validating a zero value of
// each: the validator reads every tag of a struct the first time it sees
// it.
func checkTags(val *validator.Validate, p *plan, types ...reflect.Type) problems {
	for i := range p.tasks {
		types = append(types, p.tasks[i].in, p.tasks[i].out)
	}
	var errs problems
	seen := map[reflect.Type]bool{}
	for _, t := range types {
		if seen[t] || t == inputsType || !hasValidateTags(t) {
			continue
		}
		seen[t] = true
		zt := t
		for zt.Kind() == reflect.Pointer {
			zt = zt.Elem()
		}
		if err := validateStruct(val, reflect.New(zt).Interface()); errors.Is(err, ErrInvalidWorkflow) {
			msg := strings.TrimPrefix(err.Error(), validatorPanicked)
			errs = append(errs, newError(ErrInvalidWorkflow, "the validate tags of %s: %s", t, msg))
		}
	}
	return errs
}

const validatorPanicked = "the validator panicked: "

// validateStruct validates v, turning a validator panic (a validate tag
// that names no rule, for one) into an error: it may run on a task's
// goroutine, where a panic would crash the process.
func validateStruct(val *validator.Validate, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = newError(ErrInvalidWorkflow, validatorPanicked+"%v", p)
		}
	}()
	return val.Struct(v)
}
